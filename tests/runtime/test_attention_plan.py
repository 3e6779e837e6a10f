"""attention() over torch tensors on a GPU keeps a ready plan per set of facts (a stand-in torch and the fake driver
here): one plan for repeated calls, descriptors over each call's addresses, the kernel's scalars, torch's current
stream, bound launches for addresses seen twice, and what it refuses."""
import ctypes
import struct

import pytest

import skc
from skc.blocks import attention_host
from skc.runtime import fake_cuda


def launch_values(arguments, count=13):
    """(the four descriptors' first words: the tensors' addresses, the lse address, Sq, Skv, B, H, group, scale,
    the tile counter's address, the flags' address)."""
    pointers = fake_cuda.argument_pointers(arguments, count)
    addresses = [struct.unpack("<Q", ctypes.string_at(p, 8))[0] for p in pointers[:4]]
    lse, counter, flags = (ctypes.c_uint64.from_address(pointers[i]).value for i in (4, 5, 6))
    ints = [ctypes.c_int32.from_address(p).value for p in pointers[7:12]]
    return addresses, lse, ints, ctypes.c_float.from_address(pointers[12]).value, counter, flags


@pytest.fixture
def fake():
    attention_host._PLANS.clear()
    streams = [0]
    with fake_cuda.installed() as driver, fake_cuda.torch_installed(streams) as torch:
        driver.inspect = launch_values
        yield driver, torch, streams
    attention_host._PLANS.clear()


def test_repeated_calls_share_one_plan_and_pass_each_calls_tensors(fake):
    driver, torch, streams = fake
    q, k, v = (torch.Tensor((2, 4, 300, 128)) for _ in range(3))
    out = skc.blocks.attention(q, k, v)
    assert isinstance(out, torch.Tensor) and tuple(out.shape) == (2, 4, 300, 128)
    addresses, _, ints, scale, _, _ = driver.launches[-1]["seen"]
    assert addresses == [q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr()]
    assert ints == [300, 300, 2, 4, 1] and scale == pytest.approx(128 ** -0.5)
    (plan,) = attention_host._PLANS.values()
    assert plan.config.persistent   # D = 128, not causal, at most 2048 keys
    q2, k2, v2, out2 = (torch.Tensor((2, 4, 300, 128)) for _ in range(4))
    for _ in range(3):   # new addresses, then the same ones again (bound on their second sighting)
        assert skc.blocks.attention(q2, k2, v2, out=out2) is out2
        assert driver.launches[-1]["seen"][0] == [q2.data_ptr(), k2.data_ptr(), v2.data_ptr(), out2.data_ptr()]
    assert len(attention_host._PLANS) == 2 and len(plan.bound) == 0   # (out= is another set of facts)
    assert len(list(attention_host._PLANS.values())[1].bound) == 1


def test_the_launch_follows_torchs_stream_and_takes_a_given_one(fake):
    driver, torch, streams = fake
    q, k, v = (torch.Tensor((1, 2, 128, 64)) for _ in range(3))
    out = torch.Tensor((1, 2, 128, 64))
    for stream in (0x5EED, 0xBEEF):
        streams.append(stream)   # as inside `with torch.cuda.stream(s):`
        skc.blocks.attention(q, k, v, out=out)
        assert driver.launches[-1]["stream"] == stream
    skc.blocks.attention(q, k, v, out=out, stream=7)
    assert driver.launches[-1]["stream"] == 7


def test_blocks_fetching_their_tiles_take_a_counter_per_stream(fake):
    """Causal D = 128 without the log-sum-exp: persistent blocks taking their tiles from a counter, which a launch
    takes from zero back to zero, so two streams never share one; a stream keeps its counter (a bound launch too)."""
    driver, torch, streams = fake
    q, k, v, out = (torch.Tensor((1, 40, 1000, 128)) for _ in range(4))   # (320 short tiles: fetched)
    counters = {}
    for stream in (0, 0x5EED, 0, 0x5EED, 0x5EED):
        streams.append(stream)
        skc.blocks.attention(q, k, v, causal=True, out=out)
        launch = driver.launches[-1]
        assert launch["stream"] == stream and launch["grid"][0] == 132   # (8 query blocks x 40 heads, 132 SMs)
        counters.setdefault(stream, set()).add(launch["seen"][4])
    (plan,) = attention_host._PLANS.values()
    assert plan.config.persistent and plan.config.fetch_tiles
    assert [len(found) for found in counters.values()] == [1, 1] and counters[0] != counters[0x5EED]
    assert 0 not in counters[0] | counters[0x5EED]


@pytest.mark.parametrize("causal", [False, True])
def test_checked_exponents_launch_twice_over_flags_of_their_stream(fake, causal):
    """exact_exponents="checked": each call launches its configuration, then `recomputing()` over the flags the first
    wrote (its grid: a persistent block's share, not fetched), both bound from their addresses' second sighting;
    the flags are kept per launch stream (calls running at once on two streams would read each other's), as a
    fetching configuration's counters are."""
    import dataclasses

    driver, torch, streams = fake
    q, k, v, out = (torch.Tensor((1, 40, 1000, 128)) for _ in range(4))   # (causal: 320 short tiles, fetched)
    config = dataclasses.replace(attention_host.default_config(128, "bf16", causal, False, problem=(40, 1000),
                                                               multiprocessors=132), exact_exponents="checked")
    assert config.persistent and config.fetch_tiles == causal
    flags = {}
    for stream in (0, 0x5EED, 0, 0x5EED, 0x5EED):
        streams.append(stream)
        before = len(driver.launches)
        skc.blocks.attention(q, k, v, causal=causal, out=out, config=config)
        first, second = driver.launches[before:]
        assert first["grid"] == second["grid"] == (132, 1, 1)
        assert first["stream"] == second["stream"] == stream and first["seen"] == second["seen"]
        flags.setdefault(stream, set()).add(first["seen"][5])
    (plan,) = attention_host._PLANS.values()
    first, again = plan.launches
    assert again.constants == (config.recomputing(),) and len(first) == len(again) == 2
    assert [len(found) for found in flags.values()] == [1, 1] and flags[0] != flags[0x5EED]
    assert 0 not in flags[0] | flags[0x5EED]
    # out=q (q's own view): "far" alone, bound in turn (the second launch would read Q where the first wrote O)
    streams.append(0)
    for _ in range(3):
        before = len(driver.launches)
        skc.blocks.attention(q, k, v, causal=causal, out=q, config=config)
        assert len(driver.launches) == before + 1
    (alone,) = plan.in_place
    assert alone.constants == (dataclasses.replace(config, exact_exponents="far"),) and len(alone) == 1


def test_bshd_grouped_causal_with_the_log_sum_exp(fake):
    driver, torch, streams = fake
    q = torch.Tensor((2, 500, 8, 64))        # (B, S, H, D)
    k, v = (torch.Tensor((2, 700, 2, 64)) for _ in range(2))
    out, lse = skc.blocks.attention(q, k, v, causal=True, layout="bshd", return_lse=True, scale=0.25)
    assert tuple(out.shape) == (2, 500, 8, 64) and tuple(lse.shape) == (2, 8, 500) and lse.dtype is torch.float32
    addresses, lse_address, ints, scale, _, _ = driver.launches[-1]["seen"]
    assert addresses[0] == q.data_ptr() and lse_address == lse.data_ptr()
    assert ints == [500, 700, 2, 8, 4] and scale == 0.25
    (plan,) = attention_host._PLANS.values()
    assert plan.config.causal and plan.config.lse and not plan.config.persistent


def test_bad_calls_are_refused_by_name_every_time(fake):
    driver, torch, streams = fake
    q, k, v = (torch.Tensor((1, 2, 128, 64)) for _ in range(3))
    for _ in range(2):   # the refusal is not remembered as a plan
        with pytest.raises(skc.LaunchError, match="out must be like q"):
            skc.blocks.attention(q, k, v, out=torch.Tensor((1, 2, 64, 64)))
        with pytest.raises(skc.LaunchError, match="grouped-query attention needs K/V heads dividing Q heads"):
            skc.blocks.attention(q, torch.Tensor((1, 3, 128, 64)), torch.Tensor((1, 3, 128, 64)))
        with pytest.raises(skc.LaunchError, match="bfloat16 or float16"):
            skc.blocks.attention(*(torch.Tensor((1, 2, 128, 64), torch.float32) for _ in range(3)))
    assert not attention_host._PLANS


def test_a_layout_or_config_of_another_kind_is_named_before_the_plan_key(fake):
    """An unhashable layout or config raised a bare "unhashable type" TypeError from the plan key on a GPU (the CPU
    path named it); a numpy string array passed the layout check and failed there too."""
    import numpy as np

    driver, torch, streams = fake
    q, k, v = (torch.Tensor((1, 2, 128, 64)) for _ in range(3))
    for layout in (["bhsd"], np.array("bhsd")):
        with pytest.raises(skc.LaunchError, match="layout must be one of bhsd, bshd"):
            skc.blocks.attention(q, k, v, layout=layout)
    for config in ({"head_dim": 64}, [64]):
        with pytest.raises(skc.LaunchError, match="config is an AttentionConfig, found"):
            skc.blocks.attention(q, k, v, config=config)
    assert not attention_host._PLANS and not driver.launches


def test_the_scale_keys_the_plan_by_its_value(fake):
    import numpy as np

    driver, torch, streams = fake
    q, k, v, out = (torch.Tensor((1, 2, 128, 64)) for _ in range(4))
    for scale in (0.25, np.float32(0.25), np.array(0.25)):   # one value, three types: one plan
        skc.blocks.attention(q, k, v, out=out, scale=scale)
        assert driver.launches[-1]["seen"][3] == 0.25
    skc.blocks.attention(q, k, v, out=out, scale=np.array(0.5))
    assert driver.launches[-1]["seen"][3] == 0.5 and len(attention_host._PLANS) == 2


def test_a_configuration_the_compiler_refuses_leaves_no_plan(fake):
    from skc.blocks.attention_kernel import AttentionConfig

    driver, torch, streams = fake
    q, k, v = (torch.Tensor((1, 2, 128, 256)) for _ in range(3))
    for _ in range(2):
        with pytest.raises(skc.CompileError, match="shared memory"):
            skc.blocks.attention(q, k, v, config=AttentionConfig(head_dim=256, block_n=256))
    assert not attention_host._PLANS


def test_what_the_call_asks_must_agree_with_its_configuration(fake):
    from skc.blocks.attention_kernel import AttentionConfig

    driver, torch, streams = fake
    q, k, v = (torch.Tensor((1, 2, 128, 64)) for _ in range(3))
    config = AttentionConfig(head_dim=64, lse=True)
    with pytest.raises(skc.LaunchError, match="lse=True .* return_lse=False"):
        skc.blocks.attention(q, k, v, config=config)   # (the kernel would write lse into a 4-byte stand-in)
    with pytest.raises(skc.LaunchError, match="causal=False.*causal=True"):
        skc.blocks.attention(q, k, v, causal=True, config=AttentionConfig(head_dim=64))
    with pytest.raises(skc.LaunchError, match="dtype f16.*on bf16 tensors"):
        skc.blocks.attention(q, k, v, config=AttentionConfig(head_dim=64, dtype="f16"))
    with pytest.raises(skc.LaunchError, match="one dtype"):
        skc.blocks.attention(q, torch.Tensor((1, 2, 128, 64), torch.float16), v)
    assert not attention_host._PLANS


@pytest.mark.parametrize("return_lse", [False, True])
def test_what_the_call_makes_belongs_to_the_launchs_stream(fake, return_lse):
    """out and the log-sum-exp a call makes are made in the launch's stream (torch's caching allocator gives a
    stream's memory back to that stream's next tensors: made on torch's current stream and written by a launch on
    `stream=`, they could be handed out again while it ran)."""
    driver, torch, streams = fake
    torch.Tensor.is_cuda = True
    torch.cuda.is_current_stream_capturing = lambda: False
    q, k, v = (torch.Tensor((1, 2, 128, 64)) for _ in range(3))
    for current, given in ((0, 0x5EED), (0x5EED, 0)):
        streams[:] = [current]
        del torch.made[:]
        skc.blocks.attention(q, k, v, stream=given, return_lse=return_lse)
        assert driver.launches[-1]["stream"] == given and streams == [current]
        assert len(torch.made) == 1 + return_lse and {x.made_on for x in torch.made} == {given}


def test_a_view_at_another_offset_after_the_plan_is_refused_by_name(fake):
    """The plan's key holds shapes, strides and dtypes, not addresses: a q of the plan's facts starting 2 bytes past a
    16-byte boundary, after an aligned call made the plan, reached the tensor map's encoding and was refused there
    with no operand named ("TMA needs the tensor's address to be 16-byte aligned"), where the first call names it."""
    driver, torch, streams = fake
    q, k, v = (torch.Tensor((1, 2, 128, 64)) for _ in range(3))
    skc.blocks.attention(q, k, v)
    shifted = torch.Tensor((1, 2, 128, 64), address=q.data_ptr() + 2)
    for _ in range(2):
        with pytest.raises(skc.LaunchError, match=r"attention: q starts at 0x[0-9a-f]+, no multiple of 16 bytes.*"
                                                  r"pass q\.clone\(\)"):
            skc.blocks.attention(shifted, k, v)
    assert len(attention_host._PLANS) == 1
    skc.blocks.attention(q, k, v)   # (the plan still serves aligned calls)
