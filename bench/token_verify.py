"""What verifying one bearer token costs, in microseconds, on one core.

A JWKS-signed access token (RS256, ES256) from a real OpenID provider
(oauth2-mock-server, started as the tests start it), verified by `OidcVerifier` with
its keys cached, next to seau's own HS256 `TokenSigner.verify` and the application's
HS256 tokens (`AppTokenVerifier`):

    .venv/bin/python bench/token_verify.py [--rounds 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jwt
from tests.support.oidc_provider import running_oidc_provider

from seau.auth.app_tokens import AppTokenVerifier
from seau.auth.oidc import OidcVerifier
from seau.auth.tokens import TokenSigner

REPEATS = 5


def per_call_us(call: Callable[[], object], rounds: int) -> float:
    """The median over REPEATS runs of ``rounds`` calls, in µs per call."""
    samples = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(rounds):
            call()
        samples.append((time.perf_counter() - started) / rounds * 1e6)
    return statistics.median(samples)


async def per_await_us(call: Callable[[], Awaitable[object]], rounds: int) -> float:
    samples = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(rounds):
            await call()
        samples.append((time.perf_counter() - started) / rounds * 1e6)
    return statistics.median(samples)


async def main(rounds: int) -> None:
    figures: dict[str, float] = {}
    signer = TokenSigner(secret="k" * 64, ttl=timedelta(minutes=5))
    own = signer.issue(user_id=uuid.uuid4(), version=1)
    figures["HS256 TokenSigner.verify (today)"] = per_call_us(lambda: signer.verify(own), rounds)
    app = AppTokenVerifier(secret="s" * 64)
    app_token = jwt.encode({"sub": "user_2abc", "exp": int(time.time()) + 3600}, "s" * 64)
    figures["HS256 AppTokenVerifier.verify"] = per_call_us(lambda: app.verify(app_token), rounds)

    with running_oidc_provider(algorithms=("RS256", "ES256")) as provider:
        verifier = OidcVerifier(issuer=provider.issuer, audience="seau")
        await verifier.start()
        try:
            for alg in ("RS256", "ES256"):
                token = provider.token("user_2abc", alg=alg, expires_in=3600)
                await verifier.verify(token)  # warm the key cache
                figures[f"{alg} OidcVerifier.verify (JWKS cached)"] = await per_await_us(
                    lambda token=token: verifier.verify(token),  # type: ignore[misc]
                    rounds,
                )
        finally:
            await verifier.close()

    width = max(len(name) for name in figures)
    print(f"{'verification':<{width}}  µs/token (median of {REPEATS} x {rounds})")
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:8.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5000)
    asyncio.run(main(parser.parse_args().rounds))
