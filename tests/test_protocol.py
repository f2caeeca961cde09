"""The host side of the line protocol, over pyserial's loop:// port (what is written is read back)."""
from __future__ import annotations

import socket
import threading
import time

import pytest
import serial

from hil.errors import ProtocolError
from hil.protocol import BOOT_QUIET_S, DeviceLink


def device_says(text: str, *, timeout_s: float = 0.5) -> DeviceLink:
    port = serial.serial_for_url("loop://", timeout=0.05)
    port.write(text.encode())
    return DeviceLink(port, "test-board", timeout_s=timeout_s)


def test_reads_lines_up_to_ready():
    link = device_says("m-init-done\r\n\r\nm-ready\r\n")
    assert link.wait_boot() == ["m-init-done"]


def test_silence_is_an_error_within_the_timeout_naming_board_and_command():
    link = device_says("", timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(ProtocolError) as caught:
        link.wait_boot()
    assert time.monotonic() - started < 2
    message = str(caught.value)
    assert "test-board" in message and "(boot)" in message and "no complete reply within 0.3 s" in message
    assert "received: nothing" in message


def test_a_silent_device_is_asked_its_name_and_counts_as_booted_when_it_answers():
    """The banner lost before the host listened: after BOOT_QUIET_S of silence the host sends
    `name%`; a device in its command loop answers (here a socket peer that answers only that)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    heard: list[bytes] = []
    done = threading.Event()

    def device() -> None:
        connection, _ = server.accept()
        with connection:
            heard.append(connection.recv(64))
            connection.sendall(b"m-name-dut\r\nm-ready\r\n")
            done.wait(10)

    thread = threading.Thread(target=device, daemon=True)
    thread.start()
    port = serial.serial_for_url(f"socket://127.0.0.1:{server.getsockname()[1]}", timeout=0.05)
    started = time.monotonic()
    assert DeviceLink(port, "test-board", timeout_s=BOOT_QUIET_S + 2).wait_boot() == []
    assert heard == [b"name%"] and time.monotonic() - started >= BOOT_QUIET_S
    done.set()
    port.close()
    server.close()


def test_partial_line_is_reported():
    link = device_says("m-half a li", timeout_s=0.2)
    with pytest.raises(ProtocolError, match="received: m-half a li"):
        link.wait_boot()


def test_device_error_line_is_raised_with_its_text():
    link = device_says("e-[unknown command: foo]\r\nm-ready\r\n")
    with pytest.raises(ProtocolError, match=r"reported an error: e-\[unknown command: foo\]"):
        link.read_until_ready("foo%")


def test_garbled_line_is_an_error():
    link = device_says("m-ok\r\n\x00\x7fgarbage\r\nm-ready\r\n")
    with pytest.raises(ProtocolError, match="garbled reply"):
        link.read_until_ready("name%")


def test_infer_reply_lacking_figures_is_an_error():
    # loop:// echoes the command itself first, which is not an m- line: use read side only.
    link = device_says("m-infer-done\r\nm-lab-ticks-total-[10]\r\nm-results-[1,2]\r\nm-ready\r\n")
    link.port.write = lambda data: len(data)  # swallow the command: the device's reply is queued
    with pytest.raises(ProtocolError, match="lacks ticks-min"):
        link.infer(1, 0)


def test_lost_connection_is_an_error():
    port = serial.serial_for_url("loop://", timeout=0.05)
    link = DeviceLink(port, "test-board", timeout_s=1)
    port.close()
    with pytest.raises(ProtocolError, match="connection was lost|could not send"):
        link.command("name")
