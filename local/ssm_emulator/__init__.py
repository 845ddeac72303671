"""A local AWS endpoint whose SSM Run Command really runs the batch: moto plus an executor.

    from ssm_emulator import EmulatorServer

    with EmulatorServer(instances=3, tags={"Role": "cots"}) as emu:
        ...  # point boto3 at emu.endpoint_url

See local/README.md.
"""

from ssm_emulator.control import EmulatorControl, EmulatorControlError
from ssm_emulator.execution_log import Execution, find_overlaps
from ssm_emulator.server import EmulatorServer

__all__ = ["EmulatorControl", "EmulatorControlError", "EmulatorServer", "Execution", "find_overlaps"]
