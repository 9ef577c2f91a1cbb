"""A rate-limited TCP link: a forwarding proxy that caps each direction at a given bandwidth.

    python -m benchmarks.download.link --listen 8795 --target 127.0.0.1:8794 --mbps 200

The download benchmark's ``--link-mbps`` puts one in front of the hub and one in front of the S3
server, so that the raw GET and the client's cold download cross the same link: a user's network
between the client and the hub, and between the client and the store. Each direction of each link
is a token bucket shared by all connections through it (the link is one pipe, not one per socket),
refilled at ``mbps`` megabits per second with a burst of ``BURST`` bytes, so short answers (the
resolve) cost their size over the bandwidth and a stream is paced evenly.

It models bandwidth only, no added latency. It runs in its own process (``start``), away from the
client's and the server's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import subprocess
import sys
import time

READ = 64 * 1024
BURST = 64 * 1024


class Bucket:
    """Tokens in bytes, refilled at ``rate`` bytes per second up to ``burst``; one per link direction."""

    def __init__(self, rate: float, burst: int = BURST) -> None:
        if rate <= 0:
            raise ValueError("the link rate must be positive")
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self, size: int) -> None:
        """Wait until ``size`` bytes may pass (sizes above the burst pass as one debt, paid by waiting)."""
        async with self.lock:  # first come, first served across the connections sharing the link
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            self.tokens -= size
            if self.tokens < 0:
                await asyncio.sleep(-self.tokens / self.rate)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, bucket: Bucket) -> None:
    try:
        while True:
            data = await reader.read(READ)
            if not data:
                break
            await bucket.take(len(data))
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            writer.close()


async def _serve(listen: int, target: tuple[str, int], rate: float) -> None:
    up, down = Bucket(rate), Bucket(rate)

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        for w in (client_writer, server_writer):
            sock = w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.gather(_pump(client_reader, server_writer, up), _pump(server_reader, client_writer, down))
        except asyncio.CancelledError:  # shutting down (SIGTERM): close both ends quietly
            pass
        finally:
            for w in (client_writer, server_writer):
                w.close()

    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    print(f"link 127.0.0.1:{listen} -> {target[0]}:{target[1]} at {rate * 8 / 1e6:g} Mbit/s", flush=True)
    async with server:
        await stopping.wait()  # SIGTERM (``stop``): asyncio.run then cancels the open connections' tasks


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(target_url: str, mbps: float, timeout: float = 15.0) -> tuple[subprocess.Popen, str]:
    """(process, url): a link process in front of ``http://host:port`` at ``mbps``; the URL to use instead."""
    host_port = target_url.split("://", 1)[-1].rstrip("/")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.download.link", "--listen", str(port),
                             "--target", host_port, "--mbps", str(mbps)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the link process in front of {target_url} did not start") from None
            time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--target", required=True, help="host:port to forward to")
    parser.add_argument("--mbps", type=float, required=True, help="bandwidth of each direction, Mbit/s")
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    if not host or not port.isdigit() or args.mbps <= 0:
        parser.error("--target host:port and a positive --mbps")
    try:
        asyncio.run(_serve(args.listen, (host, int(port)), args.mbps * 1e6 / 8))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
