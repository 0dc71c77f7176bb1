"""The demo fleet of `julia-chips run` on the sandbox (JULIA_DEMO): provisioned chips, a
recruiter writing to consented sandbox doctors through the balancer, and the sandbox playing
the real world's part (a ban, a temporary block) on an accelerated clock."""
