from pooltui.cli import main

main()
