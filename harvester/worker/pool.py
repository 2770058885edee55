"""The CPU side: decode, frame, resize, encode in worker processes, off the event loop.

Each worker has its own socket, fed and read by the event loop itself. A
ProcessPoolExecutor moves every image through two helper threads (a pickling
feeder and a result manager) that wait on the GIL behind the busy loop, so the
workers starved between images; here a request is one write and its answer one
callback. Each worker holds up to `depth` requests, so it starts the next image
as soon as it sends a result. A worker that dies, or overruns its time limit and
is killed, fails only the request it was working on: what it held behind that
goes to another worker, and a fresh worker takes its place.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import pickle
import signal
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

import structlog
from PIL import Image

from harvester.backoff import Backoff
from harvester.errors import HarvesterError
from harvester.imaging import Metadata, Processed, SizeRules, process
from harvester.imaging.pipeline import opencv

log = structlog.get_logger("harvester.worker")

T = TypeVar("T")
_HEADER = struct.Struct("!Q")
_READ_LIMIT = 8 * 2**20  # a whole answer fits without pausing the socket
_CLOSE_TIMEOUT_S = 30.0
_READY = b"\x01"  # a worker's first byte: started, codecs loaded
RESPAWN_BACKOFF = Backoff(1.0, 30.0)  # a refused fork is retried 1, 2, 4 ... 30 s apart


class WorkerLost(HarvesterError):
    """The worker process died (or was killed for overrunning) while on this request."""

    reason = "worker_lost"


def process_image(data: bytes, rules: SizeRules, meta: Metadata) -> tuple[Processed, str, float]:
    """Runs in a worker; the source hash travels back so duplicates cost no extra pass,
    and the CPU time so the daemon can size its window."""
    started = time.process_time()
    processed = process(data, rules, meta)
    source_sha = hashlib.sha256(data).hexdigest()
    return processed, source_sha, time.process_time() - started


# -- the worker process -----------------------------------------------------------------


def _serve(sock: socket.socket) -> None:
    """Answer requests in order until the daemon's end of the socket closes."""
    # Ctrl-C or a TERM to the process group is the daemon's to handle: it drains
    # its work through these workers, then closes their sockets.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Image.init()  # the codecs are loaded before the first image, not during it
    opencv()
    with sock:
        try:
            sock.sendall(_READY)  # only now may the daemon's clock for an image start
        except OSError:
            return
        while True:
            try:
                request = _receive(sock)
            except EOFError:
                return
            try:
                fn, args = pickle.loads(request)
                reply: tuple[bool, Any] = (True, fn(*args))
            except Exception as exc:  # noqa: BLE001 - handed back to the caller, who decides
                reply = (False, exc)
            try:
                payload = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # noqa: BLE001 - an answer that cannot travel
                payload = pickle.dumps((False, RuntimeError(f"unpicklable reply: {exc!r}")))
            try:
                sock.sendall(_HEADER.pack(len(payload)))
                sock.sendall(payload)
            except OSError:
                return  # the daemon is gone


def _receive(sock: socket.socket) -> bytearray:
    (size,) = _HEADER.unpack(_receive_exactly(sock, _HEADER.size))
    return _receive_exactly(sock, size)


def _receive_exactly(sock: socket.socket, size: int) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        count = sock.recv_into(view[received:])
        if count == 0:
            raise EOFError
        received += count
    return buffer


# -- the daemon's side ------------------------------------------------------------------


@dataclass
class _Request:
    call: tuple[Callable[..., Any], tuple[Any, ...]]
    future: asyncio.Future[Any]
    payload: bytes | None = None  # pickled when sent, so queued bodies are not held twice


@dataclass
class _Worker:
    process: BaseProcess
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    sent: deque[_Request] = field(default_factory=deque)  # answered in this order
    deadline: asyncio.TimerHandle | None = None
    overran: _Request | None = None  # the request it was killed for


class ImagePool:
    def __init__(self, processes: int, timeout_s: float, *, depth: int = 2) -> None:
        self.processes = processes
        self.timeout_s = timeout_s
        self.depth = depth
        self._context = multiprocessing.get_context("forkserver")
        # forkserver: workers never inherit the event loop, sockets or database connections.
        self._context.set_forkserver_preload(["harvester.imaging", "cv2"])
        self._workers: list[_Worker] = []
        self._waiting: deque[_Request] = deque()
        self._readers: set[asyncio.Task[None]] = set()
        self._closed = False

    async def start(self) -> None:
        for _ in range(self.processes):
            self._workers.append(await self._spawn())
        for worker in self._workers:
            self._watch(worker)

    def held(self) -> dict[int, int]:
        """Requests each worker holds (pid -> count): the one it is on and those queued behind."""
        return {w.process.pid: len(w.sent) for w in self._workers if w.process.pid is not None}

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) in a worker; its exception is re-raised here, a lost worker as WorkerLost."""
        if self._closed:
            raise WorkerLost("the image pool is closed")
        request = _Request((fn, args), asyncio.get_running_loop().create_future())
        self._waiting.append(request)
        self._dispatch()
        ok, value = await request.future
        if not ok:
            raise value
        result: T = value
        return result

    async def close(self) -> None:
        """Close every worker's socket (they exit on it); kill any that will not stop."""
        self._closed = True
        workers, self._workers = self._workers, []
        for worker in workers:
            self._disarm(worker)
            worker.writer.close()
            _fail_all(worker.sent)
        _fail_all(self._waiting)
        await asyncio.gather(*(_stop(worker.process) for worker in workers))
        # Readers end on their sockets' EOF; one may still be seeing a lost worker out.
        if self._readers:
            _, stuck = await asyncio.wait(set(self._readers), timeout=_CLOSE_TIMEOUT_S)
            for reader in stuck:
                reader.cancel()

    async def _spawn(self) -> _Worker:
        ours, theirs = socket.socketpair()
        process = self._context.Process(target=_serve, args=(theirs,), daemon=True)
        try:
            # In a thread: the first start launches the fork server and imports the codecs.
            # Our copy of the worker's end is closed there too, only once it has been sent.
            await asyncio.to_thread(_start, process, theirs)
            reader, writer = await asyncio.open_connection(sock=ours, limit=_READ_LIMIT)
        except BaseException:
            ours.close()
            raise
        try:
            # A worker still starting (slow under load) must not have its start-up counted
            # against the time limit of the first image it is given.
            await asyncio.wait_for(reader.readexactly(len(_READY)), _CLOSE_TIMEOUT_S)
        except BaseException:
            writer.close()
            process.kill()
            await _stop(process)
            raise
        return _Worker(process, reader, writer)

    def _watch(self, worker: _Worker) -> None:
        task = asyncio.create_task(self._read_answers(worker))
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)

    def _dispatch(self) -> None:
        """Hand waiting requests to the least busy workers, up to `depth` each."""
        while self._waiting and self._workers:
            worker = min(self._workers, key=lambda w: len(w.sent))
            if len(worker.sent) >= self.depth:
                return
            request = self._waiting.popleft()
            if request.future.done():  # its caller gave up (cancelled) before it was sent
                continue
            if request.payload is None:
                try:
                    request.payload = pickle.dumps(request.call, protocol=pickle.HIGHEST_PROTOCOL)
                except Exception as exc:  # noqa: BLE001 - the caller's to see, e.g. a lambda
                    request.future.set_exception(exc)
                    continue
            worker.writer.write(_HEADER.pack(len(request.payload)))
            worker.writer.write(request.payload)
            worker.sent.append(request)
            if len(worker.sent) == 1:
                self._arm(worker)

    async def _read_answers(self, worker: _Worker) -> None:
        try:
            while True:
                (size,) = _HEADER.unpack(await worker.reader.readexactly(_HEADER.size))
                payload = await worker.reader.readexactly(size)
                if not worker.sent:
                    break  # close() has already failed what it held
                request = worker.sent.popleft()
                self._disarm(worker)
                if worker.sent:
                    self._arm(worker)  # the next request is now the one being worked on
                _answer(request, payload)
                self._dispatch()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:  # a reader must never die unnoticed
            log.exception("image_worker_reader_failed", pid=worker.process.pid)
            worker.process.kill()
        await self._lost(worker)

    async def _lost(self, worker: _Worker) -> None:
        """Fail the request it was on, give the rest to others, and start a replacement."""
        self._disarm(worker)
        worker.writer.close()
        if worker not in self._workers:
            return  # closing: close() failed its requests and stops its process
        self._workers.remove(worker)
        try:
            await _stop(worker.process)  # for its exit code, and so it is no zombie
        finally:
            self._settle(worker)  # even if cancelled: no request may stay pending
        if not self._closed:
            await self._replace()
            self._dispatch()

    def _settle(self, worker: _Worker) -> None:
        """Only the request a worker was on when it died (or overran) fails; the rest move on."""
        head = worker.sent[0] if worker.sent else None
        if worker.overran is None:
            reason = f"the image worker process died (exit code {worker.process.exitcode})"
        elif worker.overran is head:
            reason = f"processing took longer than {self.timeout_s:g} s; its worker was killed"
        else:  # its answer came in just before the kill: the request after it is innocent
            reason, head = "the image worker was killed just after answering in time", None
        log.warning("image_worker_lost", pid=worker.process.pid, reason=reason)
        if head is not None:
            _fail(worker.sent.popleft(), WorkerLost(reason))
        if self._closed:
            _fail_all(worker.sent)
        else:
            self._waiting.extendleft(reversed(worker.sent))
            worker.sent.clear()

    async def _replace(self) -> None:
        """Start a worker in a lost one's place; if the system refuses, keep trying."""
        delays = RESPAWN_BACKOFF.delays()
        while not self._closed:
            try:
                worker = await self._spawn()
            except Exception as exc:  # noqa: BLE001 - fork refused, fork server gone, ...
                delay = next(delays)
                log.error("image_worker_start_failed", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                continue
            if self._closed:
                worker.writer.close()
                await _stop(worker.process)
                return
            self._workers.append(worker)
            self._watch(worker)
            return

    def _arm(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        worker.deadline = loop.call_later(self.timeout_s, self._overrun, worker, worker.sent[0])

    @staticmethod
    def _disarm(worker: _Worker) -> None:
        if worker.deadline is not None:
            worker.deadline.cancel()
            worker.deadline = None

    @staticmethod
    def _overrun(worker: _Worker, request: _Request) -> None:
        def kill_if_still_on_it() -> None:
            # An answer read in the same loop turn as the deadline has already won.
            if worker.sent and worker.sent[0] is request:
                worker.overran = request
                worker.process.kill()  # its socket closes; _read_answers takes it from there

        asyncio.get_running_loop().call_soon(kill_if_still_on_it)


def _start(process: BaseProcess, theirs: socket.socket) -> None:
    try:
        process.start()
    finally:
        theirs.close()


async def _stop(process: BaseProcess) -> None:
    """Reap a worker that is exiting; kill one that will not."""
    await asyncio.to_thread(process.join, _CLOSE_TIMEOUT_S)
    if process.is_alive():
        process.kill()
        await asyncio.to_thread(process.join, 5)


def _answer(request: _Request, payload: bytes) -> None:
    if request.future.done():  # its caller gave up while the worker was on it
        return
    try:
        request.future.set_result(pickle.loads(payload))
    except Exception as exc:  # noqa: BLE001 - e.g. an error type that will not rebuild here
        request.future.set_exception(WorkerLost(f"the worker's answer cannot be read: {exc!r}"))


def _fail_all(requests: deque[_Request]) -> None:
    while requests:
        _fail(requests.popleft(), WorkerLost("the image pool is closed"))


def _fail(request: _Request, error: BaseException) -> None:
    if not request.future.done():
        request.future.set_exception(error)
