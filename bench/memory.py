"""Peak memory of a benchmark process, read the way gunlearn's side reads its own
(`src/device.rs`): the process's VmHWM, and a sampler of VmRSS and glibc's heap that keeps the
reading with the highest VmRSS, so a peak can be split into heap in use, freed memory glibc kept,
and the rest (code, libraries, Python)."""
import ctypes
import resource
import threading
import time


def peak_rss_gb():
    """This process's own high-water mark: VmHWM belongs to the address space exec created.
    ru_maxrss would not do: exec carries the forking parent's peak over into it."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def memory_sampler(interval=0.005):
    """Starts sampling every `interval` seconds; returns (peak, stop): `peak` is a dict filled
    with `resident`, `heap_in_use`, `heap_free_kept` (bytes) of the reading with the highest
    VmRSS and `heap_in_use_max`, the highest heap in use of any reading; `stop()` ends the
    sampling. (None, None) where glibc's mallinfo2 is not there."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
    except (OSError, AttributeError):
        return None, None
    peak, stopped = {}, threading.Event()

    def run():
        while True:
            done = stopped.is_set()
            try:
                rss = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmRSS:"))
            except (OSError, StopIteration):
                return
            m = libc.mallinfo2()
            in_use = m.uordblks + m.hblkhd
            peak["heap_in_use_max"] = max(peak.get("heap_in_use_max", 0), in_use)
            if rss > peak.get("resident", -1):
                peak.update(resident=rss, heap_in_use=in_use, heap_free_kept=m.fordblks)
            if done:
                return
            time.sleep(interval)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def stop():
        stopped.set()
        thread.join()

    return peak, stop
