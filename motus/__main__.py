from motus.cli import main

main()
