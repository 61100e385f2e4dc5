"""The benchmark's machinery: generated test projects, the tools, verdicts and the report."""
