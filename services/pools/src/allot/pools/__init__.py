"""Budget pools: a shared daily budget reallocated across campaigns and ad sets."""
