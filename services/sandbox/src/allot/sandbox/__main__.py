from allot.sandbox.service import main

main()
