"""Ways out of dead ends for an operator: dead letters, sends left unknown.

Each is a plain async function (what the operator CLI calls) and a request on
`ops.cmd.>` answered by `desk.py`.
"""
