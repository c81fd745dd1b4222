"""`python -m muscle_jax.architecture`: see `muscle_jax.architecture.command`."""

from muscle_jax import cli
from muscle_jax.architecture.command import define_flags, main

if __name__ == "__main__":
    cli.run(main, define_flags)
