"""``python -m recammaster.cli``: the ``recammaster`` command, for launchers such as ``torchrun -m``."""

from recammaster.cli import main

main()
