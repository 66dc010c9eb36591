"""Live state: what the cluster and the control-plane nodes hold now."""
