from .nvidia_stand_ins import nvidia_modules  # noqa: F401 (a fixture)
