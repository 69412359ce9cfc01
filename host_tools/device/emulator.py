"""Build the firmware and run it on QEMU's emulated STM32F405 (``netduinoplus2``).

:class:`QemuDevice` boots an image with USART1 on a local TCP socket and hands back a pyserial URL,
so host code talks to the emulated board exactly as it would to a USB-serial adapter::

    elf = build_firmware("models/edge", "build/fw")
    with QemuDevice(elf) as dev:
        port = serial.serial_for_url(dev.url, timeout=5)
        ...

The listening socket is created here and passed to QEMU as an inherited file descriptor
(``-chardev socket,fd=N,server=on,wait=on``): the port is listening before QEMU starts, there
is no race for a free port, and QEMU still waits for the host to connect before the firmware
boots, so nothing printed at boot is lost.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from host_tools import REPO_ROOT
from host_tools.errors import SleepEdgeError

FIRMWARE_DIR = REPO_ROOT / "firmware"
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "edge"
DEFAULT_BUILD_DIR = FIRMWARE_DIR / "build" / "qemu"

QEMU_BINARY = "qemu-system-arm"
QEMU_MACHINE = "netduinoplus2"
#: Under this -icount setting virtual time advances 1 ns per instruction, so the firmware's
#: SysTick-based counter (``board_instructions``) counts executed instructions.
ICOUNT_ARGS = "shift=0,align=off,sleep=off"
#: Exit codes the board layer uses for faults (firmware/boards/qemu_netduinoplus2/startup.c).
EXIT_HARDFAULT = 0xF0
EXIT_UNHANDLED_IRQ = 0xF1


def have_toolchain() -> bool:
    """True when arm-none-eabi-gcc, make and qemu-system-arm are on PATH."""
    return all(shutil.which(tool) for tool in ("arm-none-eabi-gcc", "make", QEMU_BINARY))


def _tail(text: str, lines: int | None = 25) -> str:
    kept = text.strip().splitlines()
    return "\n".join(kept if lines is None else kept[-lines:])


def build_firmware(
    model_dir: str | os.PathLike[str] = DEFAULT_MODEL_DIR,
    out_dir: str | os.PathLike[str] = DEFAULT_BUILD_DIR,
    bench: bool = False,
    *,
    target: str = "qemu",
    jobs: int = 2,
) -> Path:
    """Build the QEMU firmware image with the model in ``model_dir``.

    Parameters
    ----------
    model_dir
        Folder with ``model_data.{c,h}`` and ``model_plan.{c,h}`` written by
        ``c_export.export_model`` (``sleepedge export``).
    out_dir
        Build folder; the image is ``out_dir/firmware.elf`` (``selftest.elf`` for
        ``target="selftest"``). Objects are cached there between builds.
    bench
        Build with ``-DSE_BENCH=1`` (the benchmark image).
    target
        ``"qemu"`` (the firmware) or ``"selftest"`` (board self-test, needs no model).
    jobs
        Parallel compile jobs.

    Returns
    -------
    Path
        The ELF image.

    Raises
    ------
    SleepEdgeError
        When the toolchain is missing, the model folder lacks the generated sources, or the
        build fails (the message ends with the compiler's last lines).
    """
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("make") is None:
        raise SleepEdgeError("arm-none-eabi-gcc or make not found on PATH: run `make setup` (apt packages)")
    if target not in ("qemu", "selftest"):
        raise SleepEdgeError(f"build_firmware: unknown target {target!r} (use 'qemu' or 'selftest')")
    model = Path(model_dir).resolve()
    out = Path(out_dir).resolve()
    if target == "qemu":
        missing = [n for n in ("model_data.c", "model_data.h", "model_plan.c", "model_plan.h") if not (model / n).is_file()]
        if missing:
            raise SleepEdgeError(
                f"{model}: missing {', '.join(missing)}; run `sleepedge export` to generate the model sources"
            )
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        "make", "-C", str(FIRMWARE_DIR), f"-j{max(1, jobs)}", target,
        f"MODEL_DIR={model}", f"BUILD_DIR={out}", f"BENCH={1 if bench else 0}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        # The compiler's diagnostics are on stderr; stdout only echoes the commands.
        detail = _tail(proc.stderr) or _tail(proc.stdout)
        raise SleepEdgeError(f"firmware build failed (make {target}, MODEL_DIR={model}):\n{detail}")
    elf = out / ("firmware.elf" if target == "qemu" else "selftest.elf")
    if not elf.is_file():
        raise SleepEdgeError(f"firmware build reported success but {elf} does not exist")
    return elf


def image_size(elf: str | os.PathLike[str]) -> dict[str, int]:
    """Flash and RAM use of an image from ``arm-none-eabi-size`` (Berkeley format).

    Returns ``text``, ``data``, ``bss``, ``flash_bytes`` (text + data: code, constants and the
    initial values of .data) and ``ram_bytes`` (data + bss: static RAM, stack not included).
    """
    path = Path(elf)
    if not path.is_file():
        raise SleepEdgeError(f"{path}: firmware image not found")
    if shutil.which("arm-none-eabi-size") is None:
        raise SleepEdgeError("arm-none-eabi-size not found on PATH: run `make setup` (apt packages)")
    proc = subprocess.run(["arm-none-eabi-size", "-B", str(path)], capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or len(lines) < 2:
        raise SleepEdgeError(f"{path}: arm-none-eabi-size failed: {_tail(proc.stderr)}")
    text, data, bss = (int(v) for v in lines[1].split()[:3])
    return {"text": text, "data": data, "bss": bss, "flash_bytes": text + data, "ram_bytes": data + bss}


class QemuDevice:
    """The emulated board as a context manager: boots QEMU, gives a pyserial URL, stops QEMU.

    Parameters
    ----------
    elf
        Firmware image (from :func:`build_firmware`).
    icount
        Run with ``-icount shift=0,align=off,sleep=off`` so the firmware's cycle counter counts
        executed instructions (the benchmark); without it SysTick follows host wall-clock time.
    timeout_s
        Hard limit on QEMU's lifetime; a watchdog kills it after this long (``timed_out``).
    extra_args
        Further QEMU arguments.

    Attributes
    ----------
    url : str
        ``socket://127.0.0.1:PORT`` for ``serial.serial_for_url``. QEMU accepts one connection.
    port : int
        The TCP port.
    returncode : int | None
        QEMU's exit status once it has stopped (the firmware's semihosting exit code).
    """

    def __init__(
        self,
        elf: str | os.PathLike[str],
        *,
        icount: bool = False,
        timeout_s: float = 300.0,
        extra_args: tuple[str, ...] | list[str] = (),
    ) -> None:
        self.elf = Path(elf).resolve()
        self.icount = icount
        self.timeout_s = float(timeout_s)
        self.extra_args = list(extra_args)
        self.port = 0
        self.url = ""
        self.returncode: int | None = None
        self.timed_out = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr = None
        self._watchdog: threading.Timer | None = None
        self._stderr_final = ""

    # ---- lifecycle --------------------------------------------------------------------------
    def command(self, fd: int) -> list[str]:
        """The QEMU command line, with the serial port on the listening socket ``fd``."""
        cmd = [
            QEMU_BINARY, "-M", QEMU_MACHINE, "-nographic", "-monitor", "none",
            "-kernel", str(self.elf),
            "-chardev", f"socket,id=ser0,fd={fd},server=on,wait=on", "-serial", "chardev:ser0",
            "-semihosting-config", "enable=on,target=native",
        ]
        if self.icount:
            cmd += ["-icount", ICOUNT_ARGS]
        return cmd + self.extra_args

    def start(self) -> "QemuDevice":
        """Launch QEMU; it then waits for the host to connect to :attr:`url`."""
        if self._proc is not None:
            raise RuntimeError("QemuDevice already started")
        if shutil.which(QEMU_BINARY) is None:
            raise SleepEdgeError(f"{QEMU_BINARY} not found on PATH: run `make setup` (apt packages)")
        if not self.elf.is_file():
            raise SleepEdgeError(f"{self.elf}: firmware image not found (build it with `make firmware`)")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            self.port = listener.getsockname()[1]
            fd = listener.fileno()
            self._stderr = tempfile.TemporaryFile()
            self._proc = subprocess.Popen(
                self.command(fd), stdin=subprocess.DEVNULL, stdout=self._stderr,
                stderr=self._stderr, pass_fds=(fd,),
            )
        finally:
            listener.close()  # QEMU holds its own copy of the descriptor
        self.url = f"socket://127.0.0.1:{self.port}"
        self._watchdog = threading.Timer(self.timeout_s, self._on_timeout)
        self._watchdog.daemon = True
        self._watchdog.start()
        # Fail fast on a bad command line or image instead of letting the host time out.
        time.sleep(0.05)
        if self._proc.poll() is not None:
            code = self._proc.returncode
            self._cleanup()
            raise SleepEdgeError(f"qemu exited at start (status {code}) for {self.elf}:\n{self.stderr_text()}")
        return self

    def _on_timeout(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self.timed_out = True
            self._proc.kill()

    def running(self) -> bool:
        """True while QEMU is alive."""
        return self._proc is not None and self._proc.poll() is None

    def wait(self, timeout_s: float | None = None) -> int:
        """Wait for the firmware to exit (semihosting) and return QEMU's exit status.

        Raises
        ------
        SleepEdgeError
            If QEMU is still running after ``timeout_s`` (it is then killed) or was killed by the
            watchdog.
        """
        if self._proc is None:
            raise RuntimeError("QemuDevice not started")
        try:
            self.returncode = self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise SleepEdgeError(f"qemu ({self.elf.name}) did not exit within {timeout_s} s") from None
        if self.timed_out:
            raise SleepEdgeError(f"qemu ({self.elf.name}) killed after the {self.timeout_s} s limit:\n{self.stderr_text()}")
        return self.returncode

    def stop(self) -> int | None:
        """Stop QEMU (SIGTERM, then SIGKILL after 5 s) and return its exit status."""
        if self._proc is None:
            return self.returncode
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self.returncode = self._proc.returncode
        self._cleanup()
        return self.returncode

    def _cleanup(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def stderr_text(self, lines: int | None = 25) -> str:
        """What QEMU wrote to stdout/stderr (diagnostics, semihosting output): the last
        ``lines`` lines, or everything with ``lines=None``. Still available after stop."""
        if self._stderr is None:
            return _tail(self._stderr_final, lines)
        self._stderr.seek(0)
        return _tail(self._stderr.read().decode(errors="replace"), lines)

    def check_exit(self, expected: int = 0) -> None:
        """Raise :class:`SleepEdgeError` with QEMU's diagnostics unless it exited with ``expected``."""
        if self.returncode != expected:
            what = {EXIT_HARDFAULT: " (firmware hard fault)", EXIT_UNHANDLED_IRQ: " (unhandled interrupt)"}
            detail = what.get(self.returncode or 0, "")
            raise SleepEdgeError(
                f"qemu ({self.elf.name}) exited with status {self.returncode}{detail}, expected {expected}:\n"
                f"{self.stderr_text()}"
            )

    def __enter__(self) -> "QemuDevice":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        # Did QEMU die on its own (bad image, fault, watchdog) rather than being stopped here?
        died = self._proc is not None and self._proc.poll() is not None
        code = self.stop()
        if self._stderr is not None:
            self._stderr_final = self.stderr_text(lines=None)
            self._stderr.close()
            self._stderr = None
        if exc is not None and died and (code != 0 or self.timed_out):
            # The host side usually fails with a bare "socket disconnected"; QEMU's own words
            # say why (e.g. "could not load kernel"), so they replace that error.
            why = " (killed by the time limit)" if self.timed_out else ""
            raise SleepEdgeError(
                f"qemu exited with status {code}{why} running {self.elf}:\n{self.stderr_text()}"
            ) from exc


class DeviceSession:
    """A protocol session over a serial URL: background reader, decoded messages, senders.

    The emulated USART transmits synchronously (the firmware blocks until QEMU has handed each
    byte to the socket), so the host must keep reading while it writes; a reader thread does
    that and decodes every frame into a :mod:`host_tools.device.protocol` message.

    Parameters
    ----------
    url
        pyserial URL or port name (``socket://127.0.0.1:PORT`` for :class:`QemuDevice`).
    baudrate
        Ignored by socket URLs; used for real serial ports.
    """

    def __init__(self, url: str, *, baudrate: int = 115200) -> None:
        import serial

        from host_tools.device import protocol

        self._protocol = protocol
        try:
            self.serial = serial.serial_for_url(url, baudrate=baudrate, timeout=0.05)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise SleepEdgeError(f"cannot open serial port {url}: {exc}") from exc
        self.messages: list = []
        self.decoder = protocol.FrameDecoder()
        self.bad_messages = 0
        self._seq = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._reader = threading.Thread(target=self._read_loop, name="sleepedge-serial-reader", daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        try:
            while not self._stop.is_set():
                data = self.serial.read(4096)
                if not data:
                    continue
                decoded = []
                for frame in self.decoder.feed(data):
                    try:
                        decoded.append(self._protocol.decode_message(frame))
                    except self._protocol.ProtocolError:
                        self.bad_messages += 1
                if decoded:
                    with self._cond:
                        self.messages.extend(decoded)
                        self._cond.notify_all()
        except Exception as exc:  # noqa: BLE001 - reported to the waiting thread
            if not self._stop.is_set():
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()

    def send(self, msg) -> None:
        """Encode and write one host->device message (sequence numbers count up from 0)."""
        self.serial.write(self._protocol.encode_message(msg, self._seq))
        self._seq = (self._seq + 1) & 0xFF

    def wait_for(self, predicate, timeout_s: float = 30.0, since: int = 0, what: str = "message"):
        """First message at index >= ``since`` for which ``predicate(msg)`` is true.

        Raises
        ------
        SleepEdgeError
            After ``timeout_s`` without such a message, or when the link failed.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            i = since
            while True:
                while i < len(self.messages):
                    if predicate(self.messages[i]):
                        return self.messages[i]
                    i += 1
                if self._error is not None:
                    raise SleepEdgeError(f"serial link failed while waiting for {what}: {self._error}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SleepEdgeError(
                        f"no {what} from the device within {timeout_s:.0f} s "
                        f"({len(self.messages)} messages received, {self.decoder.frames} frames)"
                    )
                self._cond.wait(min(left, 0.5))

    def of_type(self, cls) -> list:
        """All received messages of one class, in arrival order."""
        with self._cond:
            return [m for m in self.messages if isinstance(m, cls)]

    def stream_blocks(self, samples, first_block: int = 0, progress=None) -> int:
        """Send ``samples`` (int16, a multiple of SAMPLES_PER_BLOCK long) as SAMPLES frames.

        ``progress``, when given, is called with the number of blocks sent after each block.
        Returns the index of the next block.
        """
        import numpy as np

        from host_tools import constants as C

        s = np.asarray(samples)
        if s.dtype != np.int16 or s.ndim != 1 or s.size % C.SAMPLES_PER_BLOCK:
            raise SleepEdgeError(f"stream_blocks needs 1-D int16 samples in blocks of {C.SAMPLES_PER_BLOCK}")
        blocks = s.reshape(-1, C.SAMPLES_PER_BLOCK)
        for k, block in enumerate(blocks):
            self.send(self._protocol.Samples(first_block + k, block))
            if progress is not None:
                progress(k + 1)
        return first_block + len(blocks)

    def close(self) -> None:
        """Stop the reader and close the port."""
        self._stop.set()
        self._reader.join(timeout=2)
        self.serial.close()

    def __enter__(self) -> "DeviceSession":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()
