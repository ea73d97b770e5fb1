from allot.console.app import main

main()
