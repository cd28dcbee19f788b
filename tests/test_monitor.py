"""The NVML monitor, against a fake NVML (the real one needs an NVIDIA GPU)."""
import time

from archbench.instruments.monitor import GpuMonitor, throttle_names


class FakeNVML:
    NVML_CLOCK_SM, NVML_CLOCK_MEM = 1, 2

    def __init__(self, reasons=(0, 0), util=90):
        self.reasons, self.util, self.reads = list(reasons), util, 0

    def nvmlDeviceGetHandleByIndex(self, i):
        return f"gpu{i}"

    def nvmlDeviceGetClockInfo(self, h, kind):
        return {1: 1980, 2: 2619}[kind] - 10 * self.reads

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        self.reads += 1
        return self.reasons.pop(0)

    def nvmlDeviceGetUtilizationRates(self, h):
        return type("U", (), {"gpu": self.util})()


def wait_for_a_poll(mon, seconds=30.0):
    """Until the monitor's thread has read the utilisation once: a busy machine may not run it for a while."""
    deadline = time.monotonic() + seconds
    while not mon.util and time.monotonic() < deadline:
        time.sleep(0.001)
    assert mon.util, f"the polling thread read nothing in {seconds} s"


def test_a_quiet_gpu_is_not_flagged():
    with GpuMonitor(0, interval=0.001, nvml=FakeNVML()) as mon:
        wait_for_a_poll(mon)
    s = mon.stats()
    assert s["throttled"] is False and s["throttle_reasons"] is None
    assert s["sm_clock_mhz"] == 1970 and s["mem_clock_mhz"] == 2609  # the lower of the two readings
    assert s["gpu_util"] == 90.0


def test_a_throttled_measurement_is_flagged_with_its_reasons():
    with GpuMonitor(0, interval=0.001, nvml=FakeNVML(reasons=(0x1, 0x4 | 0x40))) as mon:  # idle, then power + thermal
        pass
    s = mon.stats()
    assert s["throttled"] is True and s["throttle_reasons"] == "sw_power_cap,hw_thermal_slowdown"


def test_idle_alone_is_not_throttling():
    assert throttle_names(0x1) == [] and throttle_names(0x2) == []


def test_without_nvml_the_monitor_records_nothing():
    mon = GpuMonitor(0, nvml=None)
    mon.nvml = None
    mon.handle = None
    with mon:
        pass
    assert not mon.available and mon.stats() == {}
