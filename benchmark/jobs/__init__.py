"""Many runs as jobs on submitit: the plan of a sweep (:mod:`.plan`), what each job does
(:mod:`.work`) and running them locally or on SLURM (:mod:`.engine`). The command is
``python -m benchmark.sweep``."""
