"""NVML readings around a GPU measurement: clocks, throttle reasons, utilisation.

    with GpuMonitor(0) as mon:        # clocks and throttle reasons read on entry and exit,
        run_for_a_while()             # utilisation sampled every ``interval`` s in between
    mon.stats()   # {"sm_clock_mhz": 1980, "mem_clock_mhz": 2619, "throttled": False, "gpu_util": 97.0, ...}

A measurement taken while the GPU was throttled (power, thermal, slowdown; not idle) is flagged.
Without NVML (no NVIDIA GPU, or no driver) the monitor records nothing and says so.
"""
from __future__ import annotations

import threading
from typing import Any

# Throttle reasons that change speed; "GPU idle" and "applications clocks setting" do not count.
_THROTTLING = {
    "sw_power_cap": 0x4, "hw_slowdown": 0x8, "sync_boost": 0x10, "sw_thermal_slowdown": 0x20,
    "hw_thermal_slowdown": 0x40, "hw_power_brake_slowdown": 0x80,
}


def _nvml() -> Any | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


def throttle_names(mask: int) -> list[str]:
    return [name for name, bit in _THROTTLING.items() if mask & bit]


class GpuMonitor:
    def __init__(self, index: int = 0, interval: float = 0.01, nvml: Any | None = None):
        self.nvml = nvml if nvml is not None else _nvml()
        self.interval = interval
        self.handle = self.nvml.nvmlDeviceGetHandleByIndex(index) if self.nvml else None
        self.readings: list[dict[str, Any]] = []
        self.util: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return self.handle is not None

    def _read(self) -> dict[str, Any]:
        n, h = self.nvml, self.handle
        assert n is not None, "read only when available"
        reasons = getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None) or n.nvmlDeviceGetCurrentClocksThrottleReasons
        return {
            "sm_clock_mhz": n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM),
            "mem_clock_mhz": n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM),
            "reasons": int(reasons(h)),
        }

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            assert self.nvml is not None, "polled only when available"
            self.util.append(float(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu))

    def __enter__(self) -> GpuMonitor:
        if self.available:
            self.readings.append(self._read())
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.available:
            self._stop.set()
            if self._thread:
                self._thread.join()
            self.readings.append(self._read())

    def stats(self) -> dict[str, Any]:
        if not self.readings:
            return {}
        mask = 0
        for r in self.readings:
            mask |= r["reasons"]
        names = throttle_names(mask)
        return {
            "sm_clock_mhz": min(r["sm_clock_mhz"] for r in self.readings),
            "mem_clock_mhz": min(r["mem_clock_mhz"] for r in self.readings),
            "throttled": bool(names),
            "throttle_reasons": ",".join(names) or None,
            "gpu_util": sum(self.util) / len(self.util) if self.util else None,
        }
