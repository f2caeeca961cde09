"""The lab's hardware-in-the-loop side. Its modules log to the `hil` logger, quiet unless the
application configures logging (e.g. `logging.basicConfig(level=logging.DEBUG)`)."""
import logging

logging.getLogger("hil").addHandler(logging.NullHandler())
