"""Arguments exporting only DLPack (__dlpack__, __dlpack_device__), as a jax array does: skc reads the exported
DLTensor without consuming its capsule, so the capsule's destructor runs the producer's deleter when the capsule
goes. The fields were read through a view of the DLManagedTensor after that: freed memory (here the deleter zeroes
it, so the dtype read as 0 bits)."""
import ctypes

import numpy as np

from skc.runtime import interop


class _Device(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int), ("device_id", ctypes.c_int)]


class _DataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _Managed(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _Device), ("ndim", ctypes.c_int), ("dtype", _DataType),
                ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p), ("byte_offset", ctypes.c_uint64),
                ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


_DESTRUCTOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_new_capsule = ctypes.pythonapi.PyCapsule_New
_new_capsule.restype, _new_capsule.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, _DESTRUCTOR]
_capsule_name = ctypes.pythonapi.PyCapsule_GetName
_capsule_name.restype, _capsule_name.argtypes = ctypes.c_char_p, [ctypes.c_void_p]


@_DESTRUCTOR
def _delete_unconsumed(capsule):
    if _capsule_name(capsule) == b"dltensor":   # (a consumer renames the capsule it takes)
        address = ctypes.c_void_p.from_address(capsule + 16).value   # PyCapsule's pointer, after PyObject_HEAD
        ctypes.memset(address, 0, ctypes.sizeof(_Managed))         # what the deleter's free can leave there


class _Exporter:
    """A host array that exports DLPack only, whose deleter wipes the DLManagedTensor (kept mapped, not freed)."""

    def __init__(self, array):
        self.array, self.shape, self.exported = array, (ctypes.c_int64 * 1)(array.size), []

    def __dlpack_device__(self):
        return (1, 0)   # kDLCPU

    def __dlpack__(self, stream=None):
        managed = _Managed(data=self.array.ctypes.data, device=_Device(1, 0), ndim=1, dtype=_DataType(2, 32, 1),
                           shape=ctypes.cast(self.shape, ctypes.c_void_p), byte_offset=8)
        self.exported.append(managed)
        return _new_capsule(ctypes.addressof(managed), b"dltensor", _delete_unconsumed)


def test_dlpack_fields_are_read_before_the_capsule_goes():
    array = np.arange(8, dtype=np.float32)
    exporter = _Exporter(array)
    facts = interop.tensor_facts(exporter)   # was: UnsupportedDtypeError, "code 0, 0 bits"
    assert str(facts.dtype) == "f32" and facts.device == ("cpu", None)
    assert interop.pointer_function(exporter)(exporter) == array.ctypes.data + 8   # (was: 0)
    assert all(managed.dtype.bits == 0 for managed in exporter.exported)   # every capsule was deleted
