"""Opening a pyserial URL for the protocol, where a `socket://` port says how many bytes have
arrived. pyserial's says only whether any have (0 or 1), so a reply of tens of kilobytes (a
model's output) was read a byte at a time, at a cost of tenths of a second of CPU per run."""
from __future__ import annotations

import array
import fcntl
import termios

import serial
from serial.urlhandler import protocol_socket


class SocketPort(protocol_socket.Serial):
    """pyserial's `socket://` port with `in_waiting` as the bytes the socket holds."""

    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise serial.PortNotOpenError()
        count = array.array("i", [0])
        fcntl.ioctl(self._socket, termios.FIONREAD, count)
        return count[0]


def open_url(url: str, **settings) -> serial.SerialBase:
    """serial.serial_for_url(url, **settings), with a SocketPort for `socket://`."""
    if url.startswith("socket://"):
        return SocketPort(url, **settings)
    return serial.serial_for_url(url, **settings)
