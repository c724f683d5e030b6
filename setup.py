"""Package layout: the design card's top-level folders install under one import name.

`instrumentation/` becomes `genai_otel.instrumentation` and `processors/` becomes
`genai_otel.processors`, so nothing with a bare, ambiguous name lands in site-packages.

`genai_otel.processors._wirescan` is an optional C extension (CPython C API only): where no
compiler is available the install still succeeds and the processor uses its pure-Python walk
(and says so at WARNING when it starts); GENAI_OTEL_REQUIRE_EXTENSION=1 makes a failed compile
fail the build instead (the Docker image's build stage sets it).
The build stamps the extension with a digest of its source, which the processor compares with the
`_wirescan.c` it ships beside, so a stale build (an editable install after a pull) is never used.
"""

import hashlib
import os
from pathlib import Path

from setuptools import Extension, find_packages, setup

WIRESCAN_SOURCE = Path(__file__).parent / "processors" / "_wirescan.c"
# Same digest as genai_otel.processors.scan.source_digest().
WIRESCAN_DIGEST = hashlib.sha256(WIRESCAN_SOURCE.read_bytes()).hexdigest()[:16]

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
            ["processors/_wirescan.c"],
            extra_compile_args=["-O2"],
            define_macros=[("WIRESCAN_SOURCE_DIGEST", f'"{WIRESCAN_DIGEST}"')],
            optional=os.environ.get("GENAI_OTEL_REQUIRE_EXTENSION", "") in ("", "0"),
        )
    ],
)
