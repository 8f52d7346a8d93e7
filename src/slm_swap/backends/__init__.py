"""Model backends: each turns a batch of examples into completions (see `base.Backend`)."""
