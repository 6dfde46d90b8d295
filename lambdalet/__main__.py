from lambdalet.cli import main

main()
