import typer

app = typer.Typer(name="k8s", help="Kubernetes clusters on Fly Machines", no_args_is_help=True)
