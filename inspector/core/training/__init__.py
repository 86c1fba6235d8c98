"""Training bursts and what they measure: the session, teacher-forced predictions, step times and the benchmark."""
