"""The catalog ships inside the wheel as ``autoremediation.remediations`` without leaving ``remediations/``.

pyproject.toml holds the metadata; this file only adds what its ``[tool.setuptools]`` table cannot say: a
package whose sources live outside the package tree (``remediations/`` at the root, where the Functions
deployment and the catalog's authors keep it). ``settings.DEFAULT_CATALOG_DIR`` finds either place.
"""

from setuptools import find_packages, setup

CATALOG_PACKAGE = "autoremediation.remediations"

setup(
    packages=[*find_packages(include=["autoremediation", "autoremediation.*"]), CATALOG_PACKAGE],
    package_dir={CATALOG_PACKAGE: "remediations"},
    package_data={
        "autoremediation": ["openapi.yaml"],
        "autoremediation.console": ["templates/*.html", "static/*.css"],
        # Every catalog file: schemas, routes, each remediation's yaml, scripts and README.
        CATALOG_PACKAGE: ["*", "**/*"],
    },
    exclude_package_data={CATALOG_PACKAGE: ["**/__pycache__/*", "*.pyc"]},
)
