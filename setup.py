"""Package layout: the design card's top-level folders install under one import name.

`instrumentation/` becomes `genai_otel.instrumentation` and `processors/` becomes
`genai_otel.processors`, so nothing with a bare, ambiguous name lands in site-packages.
"""

from setuptools import find_packages, setup

MAPPED = {"genai_otel.instrumentation": "instrumentation", "genai_otel.processors": "processors"}

packages = find_packages(include=["genai_otel", "genai_otel.*"])
for package, folder in MAPPED.items():
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir={"genai_otel": "genai_otel", **MAPPED})
