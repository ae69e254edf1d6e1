from flyk.cli.main import main

main()
