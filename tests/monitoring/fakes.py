"""Fakes for what cannot exist on this machine, kept in one place: a GPU (NVML)."""

from __future__ import annotations

from typing import Any


class FakeNvml:
    """NVML as nvidia-ml-py exposes it, with one 16 GiB device busy 37 % of the last sample
    period: no GPU exists here."""

    def nvmlInit(self) -> None:
        pass

    class _Memory:
        used = 3 * 2**30
        total = 16 * 2**30

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        return index

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:
        return self._Memory()

    class _Utilization:  # nvmlUtilization_t: percentages
        gpu = 37
        memory = 12

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        return self._Utilization()


class NvmlOnAMigSlice(FakeNvml):
    """A MIG slice (or some virtual GPUs): memory is reported, utilisation is not
    (nvidia-ml-py raises NVMLError_NotSupported)."""

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        raise RuntimeError("Not Supported")


class NvmlWithoutDriver(FakeNvml):
    """nvidia-ml-py installed on a machine without the NVIDIA driver: nvmlInit fails
    (nvidia-ml-py raises NVMLError_LibraryNotFound there)."""

    def nvmlInit(self) -> None:
        raise OSError("NVML Shared Library Not Found")
