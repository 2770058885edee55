"""Worker processes: each fetches, processes and writes the images it is handed.

Each worker has its own socket to the daemon, framed both ways. Two kinds of request:
a *job* is a coroutine run on the worker's own event loop (an image fetched, made and
written there: its bytes never cross back), many at once; a *call* is a plain function,
run in order, at most `depth` held. Either way the CPU-bound part runs on the worker's one
pixel thread, which notes in shared memory which request it is on and since when: that
is how the daemon knows, without a message, whom to blame when a worker dies and whose
time limit has run out. A job may ask the daemon something (is this hash stored? a slice
of a rate limit?) and waits for the answer; only rows and outcomes travel.

A worker that dies, or overruns its time limit and is killed, fails the jobs it held
and the call it was on (WorkerLost: the queue retries them); calls it had not started go
to another worker, and a fresh worker takes its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import pickle
import signal
import socket
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, TypeVar, cast

import structlog

from harvester.backoff import Backoff
from harvester.errors import HarvesterError
from harvester.loops import loop_factory
from harvester.worker.forkserver import fork_context

if TYPE_CHECKING:
    from harvester.imaging import Metadata, Processed, SizeRules

log = structlog.get_logger("harvester.worker")

T = TypeVar("T")
_HEADER = struct.Struct("!IBQ")  # body size, kind, request (or question) id
_CALL, _JOB, _ANSWER, _STOP, _DONE, _ASK = range(1, 7)
_CLOSE_TIMEOUT_S = 30.0
_READY = b"\x01"  # a worker's first byte: started, codecs loaded
RESPAWN_BACKOFF = Backoff(1.0, 30.0)  # a refused fork is retried 1, 2, 4 ... 30 s apart
_ON, _SINCE = 0, 1  # the slots of a worker's shared status: request id (0: none), start time

Setup = Callable[["Asker"], AbstractAsyncContextManager[Any]]
Asker = Callable[..., Awaitable[Any]]


class WorkerLost(HarvesterError):
    """The worker process died (or was killed for overrunning) while on this request."""

    reason = "worker_lost"


def process_image(data: bytes, rules: SizeRules, meta: Metadata) -> tuple[Processed, str, float]:
    """Runs on a worker's pixel thread; the source hash comes with it so duplicates cost no
    extra pass, and the CPU time so the daemon can size its window."""
    from harvester.imaging.pipeline import process  # preloaded by the fork server

    started = time.thread_time()
    processed = process(data, rules, meta)
    source_sha = hashlib.sha256(data).hexdigest()
    return processed, source_sha, time.thread_time() - started


class _Framed(asyncio.Protocol):
    """Frames in, frames out over one stream socket; `on_frame` sees each whole frame."""

    def __init__(
        self, on_frame: Callable[[int, int, bytes], None], on_lost: Callable[[], None]
    ) -> None:
        self._on_frame = on_frame
        self._on_lost = on_lost
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while len(buffer) - start >= _HEADER.size:
            size, kind, ident = _HEADER.unpack_from(buffer, start)
            end = start + _HEADER.size + size
            if len(buffer) < end:
                break
            body = bytes(buffer[start + _HEADER.size : end])
            start = end
            self._on_frame(kind, ident, body)
        del buffer[:start]

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost()

    def send(self, kind: int, ident: int, body: bytes = b"") -> bool:
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(_HEADER.pack(len(body), kind, ident) + body)
        return True


def _dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _reply(ok: bool, value: Any) -> bytes:
    try:
        return _dumps((ok, value))
    except Exception as exc:  # noqa: BLE001 - an answer that cannot travel
        return _dumps((False, RuntimeError(f"unpicklable reply: {exc!r}")))


# -- the worker process -----------------------------------------------------------------


class InWorker:
    """What a job sees in its worker: the service its setup made, the pixel thread and the
    daemon to ask."""

    def __init__(self, served: _Served, request_id: int) -> None:
        self._served = served
        self._id = request_id

    @property
    def service(self) -> Any:
        return self._served.service

    async def pixels(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._served.pixels(self._id, fn, *args)

    async def ask(self, question: str, *args: Any) -> Any:
        return await self._served.ask(question, *args)


class _Served:
    """A worker's end of the socket: runs what it is sent, answers, asks."""

    def __init__(self, status: Any, setup: Setup | None) -> None:
        self._status = status
        self._setup = setup
        self._pixel_thread = ThreadPoolExecutor(1, thread_name_prefix="pixels")
        self._questions: dict[int, asyncio.Future[Any]] = {}
        self._numbers = itertools.count(1)
        self._jobs: set[asyncio.Task[None]] = set()
        self._ended = asyncio.Event()
        self._link = _Framed(self._on_frame, self._ended.set)
        self.service: Any = None

    async def run(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        await loop.connect_accepted_socket(lambda: self._link, sock=sock)
        async with contextlib.AsyncExitStack() as stack:
            if self._setup is not None:
                self.service = await stack.enter_async_context(self._setup(self.ask))
            assert self._link.transport is not None
            self._link.transport.write(_READY)  # only now may the daemon's clock start
            await self._ended.wait()
            for job in self._jobs:
                job.cancel()
            await asyncio.gather(*self._jobs, return_exceptions=True)
        self._pixel_thread.shutdown(wait=False, cancel_futures=True)

    def _on_frame(self, kind: int, ident: int, body: bytes) -> None:
        if kind == _ANSWER:
            future = self._questions.pop(ident, None)
            if future is not None and not future.done():
                try:
                    ok, value = pickle.loads(body)
                except Exception as exc:  # noqa: BLE001 - an answer that will not rebuild here
                    ok, value = False, WorkerLost(f"the daemon's answer cannot be read: {exc!r}")
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            return
        if kind == _STOP:
            self._ended.set()
            return
        job = asyncio.get_running_loop().create_task(self._run(kind, ident, body))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _run(self, kind: int, ident: int, body: bytes) -> None:
        try:
            fn, args = pickle.loads(body)
            if kind == _JOB:
                reply = _reply(True, await fn(InWorker(self, ident), *args))
            else:
                reply = _reply(True, await self.pixels(ident, fn, *args))
        except Exception as exc:  # noqa: BLE001 - handed back to the caller, who decides
            reply = _reply(False, exc)
        self._link.send(_DONE, ident, reply)

    async def pixels(self, ident: int, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pixel_thread, self._noted, ident, fn, args)

    def _noted(self, ident: int, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        status = self._status
        status[_SINCE] = time.monotonic()
        status[_ON] = ident
        try:
            return fn(*args)
        finally:
            status[_ON] = 0

    async def ask(self, question: str, *args: Any) -> Any:
        number = next(self._numbers)
        future = asyncio.get_running_loop().create_future()
        self._questions[number] = future
        if not self._link.send(_ASK, number, _dumps((question, args))):
            del self._questions[number]
            raise WorkerLost("the daemon is gone")
        try:
            return await future
        finally:
            self._questions.pop(number, None)


def _serve(sock: socket.socket, status: Any, setup: Setup | None) -> None:
    """Serve the daemon until it says stop or its end of the socket closes."""
    # Ctrl-C or a TERM to the process group is the daemon's to handle: it drains
    # its work through these workers, then stops them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The pixel code is the worker's alone: the daemon's process, which imports this module,
    # never loads it (the fork server has, for every worker it forks).
    from PIL import Image

    from harvester.imaging.pipeline import opencv

    Image.init()  # the codecs are loaded before the first image, not during it
    opencv()
    with sock, contextlib.suppress(OSError), asyncio.Runner(loop_factory=loop_factory()) as loop:
        loop.run(_Served(status, setup).run(sock))


# -- the daemon's side ------------------------------------------------------------------


@dataclass
class _Request:
    kind: int
    call: tuple[Callable[..., Any], tuple[Any, ...]]
    future: asyncio.Future[Any]
    ident: int = 0
    payload: bytes | None = None  # pickled when sent, so queued bodies are not held twice


@dataclass
class _Worker:
    process: BaseProcess
    link: _Framed
    status: Any  # shared doubles: the request its pixel thread is on, and since when
    lost: asyncio.Event
    sent: dict[int, _Request] = field(default_factory=dict)
    overran: int = 0  # the request it was killed for


class ImagePool:
    def __init__(
        self,
        processes: int,
        timeout_s: float,
        *,
        depth: int = 2,
        setup: Setup | None = None,
        answers: Mapping[str, Callable[..., Awaitable[Any]]] | None = None,
    ) -> None:
        """`setup(ask)` makes, in each worker, the service its jobs use; `answers` are the
        daemon's answers to the questions jobs ask."""
        self.processes = processes
        self.timeout_s = timeout_s
        self.depth = depth
        self._setup = setup
        self.answers = dict(answers or {})
        self._context = fork_context()
        self._workers: list[_Worker] = []
        self._waiting: deque[_Request] = deque()
        self._background: set[asyncio.Task[Any]] = set()
        self._numbers = itertools.count(1)
        self._closed = False

    async def start(self) -> None:
        self._workers = list(await asyncio.gather(*(self._spawn() for _ in range(self.processes))))
        self._keep(self._watchdog())

    def held(self) -> dict[int, int]:
        """Requests each worker holds (pid -> count)."""
        return {w.process.pid: len(w.sent) for w in self._workers if w.process.pid is not None}

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) on a worker's pixel thread; its exception is re-raised here, a lost
        worker as WorkerLost."""
        result: T = await self._submit(_CALL, fn, args)
        return result

    async def job(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """await fn(InWorker, *args) on a worker's event loop, beside its other jobs."""
        result: T = await self._submit(_JOB, fn, args)
        return result

    async def each(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """await fn(InWorker, *args) on every worker now, queued behind nothing; what it
        returns or raises, or a worker lost meanwhile, is dropped (a notice, not a job)."""
        if self._closed:
            return
        payload = _dumps((fn, args))
        loop = asyncio.get_running_loop()
        sent: list[asyncio.Future[Any]] = []
        for worker in self._workers:
            request = _Request(_JOB, (fn, args), loop.create_future(), payload=payload)
            request.ident = next(self._numbers)
            worker.sent[request.ident] = request
            worker.link.send(_JOB, request.ident, payload)
            sent.append(request.future)
        await asyncio.gather(*sent, return_exceptions=True)

    async def _submit(self, kind: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        if self._closed:
            raise WorkerLost("the image pool is closed")
        request = _Request(kind, (fn, args), asyncio.get_running_loop().create_future())
        self._waiting.append(request)
        self._dispatch()
        ok, value = await request.future
        if not ok:
            raise value
        return value

    async def close(self) -> None:
        """Stop every worker (each gives back what it holds first); kill any that will not."""
        self._closed = True
        workers = list(self._workers)
        for worker in workers:
            worker.link.send(_STOP, 0)
            _fail_all(worker.sent.values())
            worker.sent.clear()
        _fail_all(self._waiting)
        self._waiting.clear()
        await asyncio.gather(*(self._retire(worker) for worker in workers))
        self._workers = []
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def _retire(self, worker: _Worker) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker.lost.wait(), _CLOSE_TIMEOUT_S)
        if worker.link.transport is not None:
            worker.link.transport.close()
        await _stop(worker.process)

    async def _spawn(self) -> _Worker:
        ours, theirs = socket.socketpair()
        status = self._context.RawArray("d", 2)
        process = self._context.Process(
            target=_serve, args=(theirs, status, self._setup), daemon=True
        )
        lost = asyncio.Event()
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        worker: _Worker | None = None

        def on_frame(kind: int, ident: int, body: bytes) -> None:
            if worker is not None:
                self._on_frame(worker, kind, ident, body)

        def on_lost() -> None:
            lost.set()
            if not ready.done():
                ready.set_exception(ConnectionError("the worker closed its socket at start"))
            if worker is not None:
                self._keep(self._lost(worker))

        link = _StartingLink(on_frame, on_lost, ready)
        try:
            # In a thread: the first start launches the fork server and imports the codecs.
            # Our copy of the worker's end is closed there too, only once it has been sent.
            await asyncio.to_thread(_start, process, theirs)
            await asyncio.get_running_loop().connect_accepted_socket(lambda: link, sock=ours)
        except BaseException:
            ours.close()
            raise
        try:
            # A worker still starting (slow under load) must not have its start-up counted
            # against the time limit of the first image it is given.
            await asyncio.wait_for(asyncio.shield(ready), _CLOSE_TIMEOUT_S)
        except BaseException:
            if link.transport is not None:
                link.transport.close()
            process.kill()
            await _stop(process)
            raise
        worker = _Worker(process, link, status, lost)
        if lost.is_set():  # it died in the moment after saying ready
            self._keep(self._lost(worker))
        return worker

    def _keep(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _dispatch(self) -> None:
        """Hand waiting requests to the least busy workers; calls up to `depth` each."""
        while self._waiting and self._workers:
            worker = min(self._workers, key=lambda w: len(w.sent))
            request = self._waiting[0]
            if request.kind == _CALL and len(worker.sent) >= self.depth:
                return
            self._waiting.popleft()
            if request.future.done():  # its caller gave up (cancelled) before it was sent
                continue
            if request.payload is None:
                try:
                    request.payload = _dumps(request.call)
                except Exception as exc:  # noqa: BLE001 - the caller's to see, e.g. a lambda
                    request.future.set_exception(exc)
                    continue
            request.ident = next(self._numbers)
            worker.sent[request.ident] = request
            worker.link.send(request.kind, request.ident, request.payload)

    def _on_frame(self, worker: _Worker, kind: int, ident: int, body: bytes) -> None:
        if kind == _DONE:
            request = worker.sent.pop(ident, None)
            if request is None:
                return  # failed already (closing)
            _answer(request, body)
            self._dispatch()
        elif kind == _ASK:
            self._keep(self._answer_question(worker, ident, body))

    async def _answer_question(self, worker: _Worker, ident: int, body: bytes) -> None:
        try:
            question, args = pickle.loads(body)
            reply = _reply(True, await self.answers[question](*args))
        except Exception as exc:  # noqa: BLE001 - the asking job's to see
            reply = _reply(False, exc)
        worker.link.send(_ANSWER, ident, reply)

    async def _lost(self, worker: _Worker) -> None:
        """Fail what it was on, give calls it had not started to others, start a replacement."""
        if self._closed or worker not in self._workers:
            return  # closing: close() failed its requests and stops its process
        self._workers.remove(worker)
        if worker.link.transport is not None:
            worker.link.transport.close()
        try:
            await _stop(worker.process)  # for its exit code, and so it is no zombie
        finally:
            self._settle(worker)  # even if cancelled: no request may stay pending
        if not self._closed:
            await self._replace()
            self._dispatch()

    def _settle(self, worker: _Worker) -> None:
        on = worker.overran or int(worker.status[_ON])
        died = f"the image worker process died (exit code {worker.process.exitcode})"
        if worker.overran:
            died = "the image worker was killed: an image it held overran its time limit"
        log.warning("image_worker_lost", pid=worker.process.pid, reason=died, held=len(worker.sent))
        again: list[_Request] = []
        for ident, request in worker.sent.items():
            if ident == on and worker.overran:
                reason = f"processing took longer than {self.timeout_s:g} s; its worker was killed"
                _fail(request, WorkerLost(reason))
            elif ident == on or request.kind == _JOB or self._closed:
                _fail(request, WorkerLost(died))
            else:
                again.append(request)
        worker.sent.clear()
        self._waiting.extendleft(reversed(again))

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
                worker.link.send(_STOP, 0)
                await self._retire(worker)
                return
            self._workers.append(worker)
            return

    async def _watchdog(self) -> None:
        """Kill a worker whose pixel thread has been on one request past the time limit."""
        every = min(1.0, self.timeout_s / 5)
        while True:
            await asyncio.sleep(every)
            now = time.monotonic()
            for worker in self._workers:
                on = int(worker.status[_ON])
                if on and not worker.overran and now - worker.status[_SINCE] > self.timeout_s:
                    worker.overran = on
                    worker.process.kill()  # its socket closes; _lost takes it from there


class _StartingLink(_Framed):
    """A worker's socket while it starts: its first byte says it is ready."""

    def __init__(
        self,
        on_frame: Callable[[int, int, bytes], None],
        on_lost: Callable[[], None],
        ready: asyncio.Future[None],
    ) -> None:
        super().__init__(on_frame, on_lost)
        self._ready = ready

    def data_received(self, data: bytes) -> None:
        if not self._ready.done():
            self._ready.set_result(None)
            data = data[len(_READY) :]
            if not data:
                return
        super().data_received(data)


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


def _fail_all(requests: Any) -> None:
    for request in list(requests):
        _fail(request, WorkerLost("the image pool is closed"))


def _fail(request: _Request, error: BaseException) -> None:
    if not request.future.done():
        request.future.set_exception(error)
