"""The commands, top to bottom: `cli` parses arguments; `run`, `pretrain`, `compare` (with `pipeline`, `runner`,
`backends`) do what each command does around a task."""
