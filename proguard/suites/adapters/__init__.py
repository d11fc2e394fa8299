"""Built-in benchmark adapters, one module per benchmark, each with its category map (``<name>.yaml``)
next to it when the benchmark labels categories. ``proguard.suites.registry`` lists them."""
