% One MNIST image, its digit: the query's label is the image's own class, so training on it is ordinary
% supervised classification through the program. tasks/mnist_digit.yaml uses it to measure the digit
% accuracy a network reaches when told every digit (the ceiling of the weakly supervised tasks).
nn(mnist_net, [X], Y, [0,1,2,3,4,5,6,7,8,9]) :: digit(X, Y).
