from nrl_autoresearch.interface.cli import main

main()
