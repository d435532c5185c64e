"""Task assembly: a task YAML validated (`config`), its keys listed (`keys`), and a task built from it (`task`,
`inputs`): program, queries, images and networks ready to train."""
