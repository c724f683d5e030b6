"""Package layout: the design card's top-level folders install under one import name.

`instrumentation/` becomes `genai_otel.instrumentation` and `processors/` becomes
`genai_otel.processors`, so nothing with a bare, ambiguous name lands in site-packages.

`genai_otel.processors._wirescan` is an optional C extension (CPython C API only): where no
compiler is available the install still succeeds and the processor uses its pure-Python walk.
"""

from setuptools import Extension, find_packages, setup

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
            optional=True,
        )
    ],
)
