"""Exercises: write a lesson's function yourself, and have it checked.

`registry` says which lessons have one (its function, parameters, starter file, kind of check)
and finds the exercise a file is the starter of; `check_report` holds what a check finds; each kind of
check has its module: `example_labels` (per-example labels: lessons 4, 8 and 10),
`packed_rows` (a packed row's labels: 11) and `step_weights` (each label's weight in an
optimizer step: 13), these two on cases TRL builds (`trl_cases`), and `final_answer` (a
conversation's final answer after its tool calls: 15) on conversations rendered at check time
(`tool_conversations`).
"""
