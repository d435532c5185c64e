% A shop's stock card: a handwritten count (an MNIST digit) next to a photo of an item (Fashion-MNIST).
% footwear(X, Y, N): the card counts N pieces of footwear: the digit when the item is a shoe, else 0.
nn(digit_net, [X], D, [0,1,2,3,4,5,6,7,8,9]) :: digit(X, D).
nn(item_net, [X], I, [tshirt, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, boot]) :: item(X, I).

shoe(sandal).
shoe(sneaker).
shoe(boot).

footwear(X, Y, N) :- digit(X, N), item(Y, I), shoe(I).
footwear(X, Y, 0) :- digit(X, _), item(Y, I), \+ shoe(I).
