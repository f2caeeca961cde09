"""The host side of the line protocol, over pyserial's loop:// port (what is written is read back)."""
from __future__ import annotations

import socket
import threading
import time

import pytest
import serial

from hil.errors import ProtocolError
from hil.run.protocol import BOOT_QUIET_S, DeviceLink


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


def test_a_cut_banner_is_skipped_up_to_its_m_lines():
    link = device_says("-performance\r\nm-init-done\r\nm-ready\r\n")
    assert link.wait_boot() == ["m-init-done"]


class SilentAtBoot:
    """A device (a socket peer) whose banner the host never saw: it answers commands only. With
    `late_banner`, the banner arrives after the host has asked, just before the answer."""

    def __init__(self, late_banner: bool = False) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.heard: list[bytes] = []
        self.done = threading.Event()
        self.late_banner = late_banner
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        connection, _ = self.server.accept()
        with connection:
            for _ in range(2):
                command = connection.recv(64)
                self.heard.append(command)
                if command == b"name%":
                    banner = b"m-init-done\r\nm-ready\r\n" if self.late_banner else b""
                    connection.sendall(banner + b"m-name-dut-[x]\r\nm-ready\r\n")
                else:
                    connection.sendall(b"m-" + command.rstrip(b"%") + b"-done\r\nm-ready\r\n")
            self.done.wait(10)

    def link(self) -> DeviceLink:
        port = serial.serial_for_url(f"socket://127.0.0.1:{self.server.getsockname()[1]}", timeout=0.05)
        return DeviceLink(port, "test-board", timeout_s=BOOT_QUIET_S + 2)


@pytest.mark.parametrize("late_banner", [False, True], ids=["banner-lost", "banner-late"])
def test_a_silent_device_is_asked_its_name_and_the_next_command_gets_its_own_reply(late_banner):
    device = SilentAtBoot(late_banner)
    link = device.link()
    started = time.monotonic()
    banner = link.wait_boot()
    assert time.monotonic() - started >= BOOT_QUIET_S
    assert banner == (["m-init-done", "m-name-dut-[x]"] if late_banner else ["m-name-dut-[x]"])
    assert link.command("profile") == ["m-profile-done"]  # nothing of the boot exchange is left over
    assert device.heard == [b"name%", b"profile%"]
    device.done.set()
    link.port.close()
    device.server.close()


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


def test_the_link_records_every_line_sent_and_received_with_its_time():
    link = device_says("m-init-done\r\nm-ready\r\n")
    link.wait_boot()
    link.send("name")  # loop:// echoes it back: an incomplete line, then silence
    with pytest.raises(ProtocolError):
        link.read_until_ready("name%", timeout_s=0.2)
    lines = link.transcript.lines
    assert [(line.direction, line.text) for line in lines[:3]] == [
        ("<", "m-init-done"), ("<", "m-ready"), (">", "name%")]
    assert lines[3].direction == "<" and "name%" in lines[3].text and "incomplete" in lines[3].text
    assert lines[-1].direction == "#" and "no complete reply within 0.2 s" in lines[-1].text
    offsets = [line.offset_s for line in lines]
    assert offsets == sorted(offsets) and offsets[-1] >= 0.2
    assert link.transcript.tail(2).count("\n") == 2 and "> name%" in link.transcript.text()


def test_a_long_reply_over_a_socket_is_read_in_chunks_not_bytes():
    """A model's output line is tens of kilobytes: pyserial's socket:// port says only whether a
    byte waits, so it was read a byte at a time; open_url's port says how many."""
    from hil.run.socket_port import SocketPort, open_url

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    reply = b"m-results-[" + b",".join(b"%d" % i for i in range(6000)) + b"]\r\nm-ready\r\n"
    port = open_url(f"socket://127.0.0.1:{server.getsockname()[1]}", timeout=0.05)
    connection, _ = server.accept()
    assert isinstance(port, SocketPort) and port.in_waiting == 0
    connection.sendall(reply)
    deadline = time.monotonic() + 5
    while port.in_waiting < len(reply) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert port.in_waiting == len(reply)
    reads = []
    read = port.read
    port.read = lambda size=1: reads.append(size) or read(size)
    lines = DeviceLink(port, "test-board", timeout_s=2).read_until_ready("infer%")
    assert lines == [reply.split(b"\r\n")[0].decode()] and len(reads) <= 4
    loop = open_url("loop://", timeout=0.05)  # other URLs as pyserial opens them
    assert not isinstance(loop, SocketPort) and type(loop) is type(serial.serial_for_url("loop://"))
    port.close()
    connection.close()
    server.close()
