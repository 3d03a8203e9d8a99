"""A bare Django site for the HTTP and fan-out benchmarks' baselines: one trivial view, one trivial page and one bare
Channels consumer, served by daphne in the same run as the lab, so every rate is a ratio measured in one sitting.
Bench-only code: nothing of Reqflow is imported here."""
