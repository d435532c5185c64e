"""Training: the loop (`loop`, which knows no task), what it trains (`learners`), and what a run leaves behind
(`rundir`, `checkpoint`, `tracking`), on the threads `threads` chooses."""
