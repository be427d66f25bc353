"""StatusService: delivery workers claim hops and report outcomes."""
