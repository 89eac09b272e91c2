"""Ask for a range and print a random number in it."""
import random

min_number = int(input("Please enter the min number: "))
max_number = int(input("Please enter the max number: "))

if max_number < min_number:
    print("Invalid input - shutting down...")
else:
    print(random.randint(min_number, max_number))
