"""Package layout: the design card's top-level folders install under one import name.

`instrumentation/` becomes `genai_otel.instrumentation` and `processors/` becomes
`genai_otel.processors`, so nothing with a bare, ambiguous name lands in site-packages.

`genai_otel.processors._wirescan` is an optional C extension (CPython C API only): where no
compiler is available the install still succeeds and the processor uses its pure-Python walk
(and says so at WARNING when it starts); GENAI_OTEL_REQUIRE_EXTENSION=1 makes a failed compile
fail the build instead (the Docker image's build stage sets it).
The extension's C sources are in `processors/native/` (split by concern, one internal header).
The build stamps the extension with a digest of every one of them, which the processor compares
with the sources it ships beside, so a stale build (an editable install after a pull) is never used.
"""

import hashlib
import os
from pathlib import Path

from setuptools import Extension, find_packages, setup

NATIVE = Path("processors") / "native"
WIRESCAN_SOURCES = sorted(p for p in (Path(__file__).parent / NATIVE).iterdir() if p.suffix in (".c", ".h"))


def source_digest() -> str:
    """Same digest as genai_otel.processors.scan.source_digest(): every source, name and content."""
    digest = hashlib.sha256()
    for path in WIRESCAN_SOURCES:
        data = path.read_bytes()
        digest.update(f"{path.name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:16]


MAPPED = {"genai_otel.instrumentation": "instrumentation", "genai_otel.processors": "processors"}

packages = find_packages(include=["genai_otel", "genai_otel.*"])
for package, folder in MAPPED.items():
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder)]

setup(
    packages=packages,
    package_dir={"genai_otel": "genai_otel", **MAPPED},
    ext_modules=[
        Extension(
            "genai_otel.processors._wirescan",
            [str(NATIVE / p.name) for p in WIRESCAN_SOURCES if p.suffix == ".c"],
            depends=[str(NATIVE / p.name) for p in WIRESCAN_SOURCES if p.suffix == ".h"],
            # hidden: the sources' shared functions are not exported (direct calls, no PLT)
            extra_compile_args=["-O2", "-fvisibility=hidden"],
            define_macros=[("WIRESCAN_SOURCE_DIGEST", f'"{source_digest()}"')],
            optional=os.environ.get("GENAI_OTEL_REQUIRE_EXTENSION", "") in ("", "0"),
        )
    ],
)
