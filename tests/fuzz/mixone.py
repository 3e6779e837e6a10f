import sys, os, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuzzgen, mixgen
seed, count = int(sys.argv[1]), int(sys.argv[2])
b = mixgen.Batch(seed, count)
m = fuzzgen.load_module(b.source, tempfile.mkdtemp(), f"one_{seed}")
ptx = m.batch.compile(target="sm_90a", block=(mixgen.T, 1, 1)).asm("ptx")
open(f"/tmp/one_{seed}.ptx", "w").write(ptx)
open(f"/tmp/one_{seed}.py", "w").write(b.source)
