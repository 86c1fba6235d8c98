"""The label process: the user's own function runs in a child process that can be stopped.

Four roles, one module each (and the processes themselves):

- `code_errors`: a problem in the user's code (`LabelCodeError`), its frames, a worker that is gone;
- `protocol`: the kinds of function (`FunctionKind`), the requests and replies, every shared limit;
- `worker`: the function where it runs: the file run, the function called by its kind, its
  return checked (imported by `child` only, and by the bench that times it in-process);
- `parent`: the function seen from the app and the commands (`load_label_function`,
  `LabelFunction`), over `sandbox`, which starts and guards the processes of `child`
  (a zygote and one worker per version of the file), talking over `channel`.
"""
