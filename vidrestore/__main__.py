from vidrestore.cli import main

main()
