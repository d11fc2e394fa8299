"""Public guard benchmarks: adapters that read each benchmark's own release, named suites that mirror
the ProGuard and GuardReasoner evaluation tables, suite scoring, and the compare table.

``proguard bench --suite NAME --data-root DIR --model M`` runs a suite; ``proguard bench compare`` lays
runs side by side with the published rows; ``proguard suites map NAME`` proposes a category map.
See docs/suites.md.
"""

from proguard.suites.base import Adapter, BenchSample, LoadResult, MissingData, Skip, SuiteDataError
from proguard.suites.catmap import CategoryMap, load_map
from proguard.suites.definitions import SUITES, Entry, SuiteError, resolve
from proguard.suites.registry import AdapterRegistry, AdapterRegistryError, default_registry

__all__ = [
    "SUITES",
    "Adapter",
    "AdapterRegistry",
    "AdapterRegistryError",
    "BenchSample",
    "CategoryMap",
    "Entry",
    "LoadResult",
    "MissingData",
    "Skip",
    "SuiteDataError",
    "SuiteError",
    "default_registry",
    "load_map",
    "resolve",
]
