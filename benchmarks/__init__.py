"""Benchmarks: latency/throughput runs, environment capture and Jetson power sampling (``tvbench``)."""
