"""A faithful stand-in for TTAPI's image routes, for tests, demos and benchmarks.

It encodes the wire contract independently of the client (it never imports the catalog),
so the two can be tested against each other.
"""

from .app import Emulator
from .models import EmulatorOptions, Fault, HookDelivery, RequestRecord
from .server import EmulatorServer, run_emulator

__all__ = [
    "Emulator",
    "EmulatorOptions",
    "EmulatorServer",
    "Fault",
    "HookDelivery",
    "RequestRecord",
    "run_emulator",
]
