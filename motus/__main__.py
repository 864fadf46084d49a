from motus.entry import main

main()
