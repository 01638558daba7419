"""Chain ranking, caption generation, judges, ARGUS, the benchmarks and the `rcc-evaluate` command.

Modules: `argus`, `benchmarks`, `evaluate`, `evaluate_cli`, `hf_judge`, `judges`, `lfmcqa`, `mcq`, `vdc`. Generated
by tools/wings.py: do not edit."""
