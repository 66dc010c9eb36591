"""What every platform's lowering shares: the cluster layer (cluster/, helm/, the plan's
first steps) in ``common`` and its shell part in cluster-layer.sh.j2. The lowerings
themselves are in compiler/platforms/<type>/lower.py."""
